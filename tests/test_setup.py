"""configure(): own provider with OTLP exporters from OTEL_* variables, or attach to a host's provider."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import types

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import massgen_tracing
from massgen_tracing._internal import convention as c
from massgen_tracing._internal import guard, setup
from massgen_tracing._internal.sinks import CallbackSink
from massgen_tracing.testing.otlp_receiver import OtlpReceiver

OTEL_VARS = [v for v in os.environ if v.startswith(("OTEL_", "MASSGEN_TRACING_", "PHOENIX_"))]


@pytest.fixture
def fresh_global(monkeypatch):
    """Let each test install a global provider (the API allows it once per process)."""
    for v in OTEL_VARS:
        if v != "MASSGEN_TRACING_STRICT":
            monkeypatch.delenv(v)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace._TRACER_PROVIDER_SET_ONCE, "_done", False)
    # A host going after us replaces both (see setup._yield_to_a_later_host): put them back afterwards.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace._TRACER_PROVIDER_SET_ONCE)
    monkeypatch.setattr(trace, "_set_tracer_provider", trace._set_tracer_provider)
    yield
    massgen_tracing.shutdown()


def emit_step() -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("agent", attributes=c.step_attributes("langgraph", "node", "agent", index=2)):
        pass


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_a_real_otlp_receiver_over_both_protocols(fresh_global, monkeypatch, protocol):
    with OtlpReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_base
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-under-test")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        records = []
        massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
        emit_step()
        massgen_tracing.shutdown()
        spans = rx.wait_for(1)
    assert [(s.name, s.attributes[c.STEP_KIND], s.attributes[c.STEP_INDEX]) for s in spans] == [("agent", "node", 2)]
    assert spans[0].resource["service.name"] == "svc-under-test"
    assert spans[0].resource["deployment.environment"] == "test"
    assert rx.requests["grpc" if protocol == "grpc" else "http"] == 1
    assert [r.type for r in records] == ["start", "end"]


def test_phoenix_collector_endpoint_and_project_name_are_honoured(fresh_global, monkeypatch):
    with OtlpReceiver(grpc=False) as rx:
        monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", rx.http_base)
        monkeypatch.setenv("PHOENIX_PROJECT_NAME", "my-project")
        massgen_tracing.configure(sinks=[], instrument=False)
        emit_step()
        massgen_tracing.shutdown()
        spans = rx.wait_for(1)
    assert [s.name for s in spans] == ["agent"]
    assert spans[0].resource["openinference.project.name"] == "my-project"


def test_no_endpoint_means_no_exporter_and_no_network_attempt(fresh_global):
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None and state.owns_provider and state.exporters == []


def test_the_console_exporter_prints_spans_to_stdout(fresh_global, monkeypatch, capfd):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    massgen_tracing.configure(sinks=[], instrument=False)
    emit_step()
    massgen_tracing.shutdown()
    assert '"name": "agent"' in capfd.readouterr().out


def test_otel_traces_exporter_none_exports_nothing_even_with_an_endpoint(fresh_global, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None and state.exporters == []


@pytest.mark.parametrize(("env", "limit"), [
    ({}, 4096),  # ours: a long conversation's model call keeps its first messages (OTel's default: 128)
    ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "50"}, 50),
    ({"OTEL_ATTRIBUTE_COUNT_LIMIT": "60"}, 60),
])
def test_our_provider_keeps_4096_attributes_a_span_unless_the_otel_variables_say_otherwise(
        fresh_global, monkeypatch, env, limit):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None and state.owns_provider
    with trace.get_tracer("t").start_as_current_span("s") as span:
        span.set_attributes({f"k{i}": i for i in range(limit + 5)})
    assert len(span.attributes) == limit and span.dropped_attributes == 5


def test_otel_sdk_disabled_configures_nothing(fresh_global, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert massgen_tracing.configure(sinks=[], instrument=False) is None
    assert not hasattr(trace.get_tracer_provider(), "add_span_processor")


def test_a_host_provider_is_joined_not_replaced(fresh_global):
    host = TracerProvider()
    host_exporter = InMemorySpanExporter()
    host.add_span_processor(SimpleSpanProcessor(host_exporter))
    trace.set_tracer_provider(host)
    records = []
    state = massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
    assert state is not None and state.provider is host and not state.owns_provider
    assert trace.get_tracer_provider() is host
    emit_step()
    state.processor.force_flush(2000)
    assert [s.name for s in host_exporter.get_finished_spans()] == ["agent"]
    assert [r.type for r in records] == ["start", "end"]


def _host_with_exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    host = TracerProvider()
    exporter = InMemorySpanExporter()
    host.add_span_processor(SimpleSpanProcessor(exporter))
    return host, exporter


def test_a_host_that_installs_its_provider_after_ours_gets_the_global_place_and_our_steps(fresh_global, caplog):
    records = []
    state = massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
    assert state is not None and state.owns_provider
    ours = state.provider
    host, host_exporter = _host_with_exporter()
    with caplog.at_level(logging.WARNING):
        trace.set_tracer_provider(host)  # the program's own tracing, set up after ours
    assert caplog.records == []  # no "Overriding of current TracerProvider is not allowed"
    assert trace.get_tracer_provider() is host
    assert state.provider is host and not state.owns_provider
    emit_step()
    state.processor.force_flush(2000)
    assert [s.name for s in host_exporter.get_finished_spans()] == ["agent"]
    assert [r.type for r in records] == ["start", "end"]
    # A third provider is refused as OpenTelemetry refuses any second one: the place is the host's now.
    with caplog.at_level(logging.WARNING):
        trace.set_tracer_provider(ours)
    assert [r.getMessage() for r in caplog.records] == ["Overriding of current TracerProvider is not allowed"]
    assert trace.get_tracer_provider() is host


def test_a_tracer_the_program_got_from_ours_before_the_host_took_over_still_reaches_the_hosts_exporter(
        fresh_global):
    # `tracer = trace.get_tracer("myapp")` at module level, after importing LangGraph (ours is global by
    # then), and the program's own provider set up in main(): those spans never reached its exporter.
    records = []
    state = massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
    assert state is not None
    early = trace.get_tracer("myapp")  # bound to our provider for good
    host, host_exporter = _host_with_exporter()
    trace.set_tracer_provider(host)
    with trace.get_tracer("host").start_as_current_span("request"):
        with early.start_as_current_span("inner-work"):
            with early.start_as_current_span("agent", attributes=c.step_attributes("langgraph", "node", "agent")):
                pass
    state.processor.force_flush(2000)
    spans = {s.name: s for s in host_exporter.get_finished_spans()}
    assert sorted(spans) == ["agent", "inner-work", "request"]
    assert spans["inner-work"].parent.span_id == spans["request"].context.span_id
    assert spans["agent"].parent.span_id == spans["inner-work"].context.span_id
    assert [(r.type, r.step_name) for r in records] == [("start", "agent"), ("end", "agent")]  # once each


def test_a_failing_forward_to_the_hosts_processors_is_contained(fresh_global, monkeypatch, caplog):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    records = []
    state = massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
    assert state is not None
    early = trace.get_tracer("myapp")
    host, _ = _host_with_exporter()
    trace.set_tracer_provider(host)
    monkeypatch.setattr(host._active_span_processor, "_span_processors", None)  # our forwarding breaks
    with caplog.at_level(logging.WARNING):
        with early.start_as_current_span("agent", attributes=c.step_attributes("langgraph", "node", "agent")):
            pass  # the program's span: must not raise
    assert "internal error in setup.forward to the host's provider" in caplog.text
    state.processor.force_flush(2000)
    assert [(r.type, r.step_name) for r in records] == [("start", "agent"), ("end", "agent")]


def test_a_failing_hand_over_leaves_opentelemetrys_own_answer_and_the_program_runs_on(fresh_global, monkeypatch,
                                                                                     caplog):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    records = []
    state = massgen_tracing.configure(sinks=[CallbackSink(records.append)], instrument=False)
    assert state is not None

    def broken(*args, **kwargs):
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(setup, "_hand_over", broken)
    host, _ = _host_with_exporter()
    with caplog.at_level(logging.WARNING):
        trace.set_tracer_provider(host)  # must not raise into the program
    messages = [r.getMessage() for r in caplog.records]
    assert messages[-1] == "Overriding of current TracerProvider is not allowed"  # as without us
    assert any("internal error in setup.hand over to the host's provider" in m for m in messages)
    assert trace.get_tracer_provider() is state.provider  # ours still traces
    emit_step()
    state.processor.force_flush(2000)
    assert [r.type for r in records] == ["start", "end"]


def test_a_failing_end_of_open_spans_before_the_hosts_exit_hook_is_contained(fresh_global, monkeypatch, caplog):
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None

    def broken() -> int:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(state.processor, "end_open_spans", broken)
    with caplog.at_level(logging.WARNING):
        setup._end_open_spans_before_the_host()  # an exit hook: must not raise into the interpreter's exit
    assert any("internal error in setup.end open spans before the host's shutdown" in r.getMessage()
               for r in caplog.records)


def test_a_child_whose_collector_does_not_answer_stops_waiting_for_it_after_one_warning(fresh_global, monkeypatch,
                                                                                       caplog):
    # Port 9 refuses: the exporter retries with back-off. A run's end in a child waits 0.5 s for it
    # once, warns, and later runs in that process no longer wait.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(setup, "_child_export_gave_up", False)
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None and state.processor.after_child_run is setup._send_from_child
    monkeypatch.setattr(state.processor, "_forked", True)
    with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
        emit_step()  # a node with no run above it: a run of its own
        emit_step()
    warnings = [r.getMessage() for r in caplog.records if r.name == "massgen_tracing"]
    assert warnings == ["massgen-tracing: the collector did not take this process's spans within 0.5s; "
                        "spans still queued when the process is killed are lost"]
    assert setup._child_export_gave_up


def test_a_program_exits_promptly_when_the_collector_is_unreachable(tmp_path):
    # Port 9 (discard) is closed on loopback: every export attempt is refused and the SDK would retry
    # with back-off for ~7 s at exit. The bound is the setting (0.5 s here) plus interpreter teardown.
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import time, massgen_tracing
        from opentelemetry import trace
        from massgen_tracing._internal import convention as c
        massgen_tracing.configure(sinks=[], instrument=False)
        with trace.get_tracer("t").start_as_current_span("n", attributes=c.step_attributes("langgraph", "node", "n")):
            pass
        t0 = time.monotonic()
        massgen_tracing.shutdown()
        print(f"{time.monotonic() - t0:.2f}")
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MASSGEN_TRACING"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", MASSGEN_TRACING_SHUTDOWN_TIMEOUT="0.5")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < 2.5, f"shutdown took {out.stdout.strip()} s; stderr: {out.stderr[-500:]}"


def test_a_bad_variable_does_not_stop_the_program(fresh_global, monkeypatch, capsys):
    monkeypatch.setenv("MASSGEN_TRACING_CONSOLE", "loud")
    state = massgen_tracing.configure(sinks=[], instrument=False)
    assert state is not None and state.settings["console"] == "auto"
    assert capsys.readouterr().err == (
        "massgen-tracing: MASSGEN_TRACING_CONSOLE='loud' is not valid: expected one of auto, live, plain, off; "
        "using auto.\n")


def test_inside_massgen_the_default_console_stays_off_but_an_explicit_one_is_honoured(fresh_global, monkeypatch):
    import types

    from massgen_tracing._internal.console import PlainConsoleSink
    from massgen_tracing._internal.settings import resolve

    monkeypatch.setitem(sys.modules, "massgen", types.ModuleType("massgen"))
    assert setup._default_sinks(resolve(environ={})) == []
    explicit = setup._default_sinks(resolve(environ={"MASSGEN_TRACING_CONSOLE": "plain"}))
    assert [type(s) for s in explicit] == [PlainConsoleSink]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork start method exists only on POSIX")
def test_a_multiprocessing_child_shows_its_steps_and_delivers_its_last_records(tmp_path):
    # A multiprocessing child ends with os._exit() (no atexit): its run's last records must still land.
    script = tmp_path / "app.py"
    record = tmp_path / "steps.jsonl"
    script.write_text(textwrap.dedent("""
        import multiprocessing, massgen_tracing
        from opentelemetry import trace
        from massgen_tracing._internal import convention as c

        def work(name):
            tracer = trace.get_tracer("t")
            with tracer.start_as_current_span(name, attributes=c.step_attributes("langgraph", "run", name)):
                with tracer.start_as_current_span("n", attributes=c.step_attributes("langgraph", "node", "n")):
                    pass

        if __name__ == "__main__":
            massgen_tracing.configure(instrument=False)
            work("in-parent")
            child = multiprocessing.get_context("fork").Process(target=work, args=("in-child",))
            child.start()
            child.join(30)
            print("child exit", child.exitcode)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MASSGEN_TRACING"))}
    env.update(MASSGEN_TRACING_FILE=str(record), MASSGEN_TRACING_CONSOLE="plain")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "child exit 0\n"
    from massgen_tracing._internal.sinks import read_jsonl

    with open(record, encoding="utf-8") as fh:
        seen = sorted((r.span_name, r.type) for r in read_jsonl(fh))
    assert seen == sorted([(run, t) for run in ("in-parent", "in-child", "n", "n") for t in ("start", "end")])
    import re

    # the terminal view: time of day and durations dropped, the child's lines after the parent's
    lines = [re.sub(r" \d+ms", "", line.split(" ", 1)[1]) for line in out.stderr.splitlines()]
    assert lines == ["▶ langgraph run in-parent", "  ▶ node n", "  ✓ node n", "✓ langgraph run in-parent 1 step",
                     "▶ langgraph run in-child", "  ▶ node n", "  ✓ node n", "✓ langgraph run in-child 1 step"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_are_exported_at_exit_even_where_atexit_may_not_start_threads(tmp_path, protocol):
    # From Python 3.12 on, Thread.start() raises once the interpreter is finalizing, which is when
    # atexit handlers run. Simulated here on any version: an atexit hook that runs before ours
    # forbids new threads, and the span must still reach the collector at exit.
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import atexit, threading, massgen_tracing
        from opentelemetry import trace
        from massgen_tracing._internal import convention as c
        massgen_tracing.configure(sinks=[], instrument=False)

        def finalizing():
            def refuse(self):
                raise RuntimeError("can't create new thread at interpreter shutdown")
            threading.Thread.start = refuse

        atexit.register(finalizing)  # registered after ours, so it runs first
        with trace.get_tracer("t").start_as_current_span("n", attributes=c.step_attributes("langgraph", "node", "n")):
            pass
    """))
    with OtlpReceiver() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MASSGEN_TRACING"))}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=rx.grpc_endpoint if protocol == "grpc" else rx.http_base,
                   OTEL_EXPORTER_OTLP_PROTOCOL=protocol, MASSGEN_TRACING_STRICT="1")
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""
        assert [s.name for s in rx.wait_for(1, timeout=5)] == ["n"]


def test_a_jsonl_path_under_a_file_names_the_real_reason(fresh_global, monkeypatch, capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    path = str(tmp_path / "notes.txt" / "run.jsonl")
    monkeypatch.setenv("MASSGEN_TRACING_FILE", path)
    monkeypatch.setenv("MASSGEN_TRACING_CONSOLE", "off")
    assert massgen_tracing.configure(instrument=False) is not None
    assert capsys.readouterr().err == (  # not makedirs' "File exists"
        f"massgen-tracing: MASSGEN_TRACING_FILE={path!r} cannot be opened (a parent of the path is a file, not "
        "a directory); no JSONL record is written.\n")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_stops_the_jsonl_record_with_one_line_not_an_internal_error(capsys):
    from massgen_tracing._internal.records import StepRecord
    from massgen_tracing._internal.sinks import JsonlSink

    sink = JsonlSink("/dev/full")
    rec = StepRecord("start", 1, "t", "s", None, "n")
    sink.handle(rec)
    sink.handle_batch([rec, rec])  # stopped: no second message
    sink.close()
    assert capsys.readouterr().err == (
        "massgen-tracing: writing the JSONL record '/dev/full' failed (No space left on device); no more "
        "records are written to it.\n")


class _BrokenFlush:
    """A live processor whose flush fails, as our own bug would."""

    calls = 0

    def force_flush(self, timeout_millis: int) -> bool:
        type(self).calls += 1
        raise RuntimeError("bug in massgen-tracing")


def _with_a_failing_flush(monkeypatch) -> type[_BrokenFlush]:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())
    broken = type("Broken", (_BrokenFlush,), {"calls": 0})
    monkeypatch.setattr(setup, "_state", types.SimpleNamespace(processor=broken()))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # both put back after the test, wrapped or not
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    return broken


def test_a_failing_flush_before_an_exception_ignored_report_still_prints_the_report(monkeypatch, caplog):
    printed: list[str] = []
    broken = _with_a_failing_flush(monkeypatch)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: printed.append(f"{u.exc_type.__name__}: {u.exc_value}"))
    setup._flush_before_uncaught_tracebacks()
    setup._flush_before_uncaught_tracebacks()  # once only: not wrapped twice

    class Leaky:
        def __del__(self) -> None:
            raise ValueError("the program's own error")

    with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
        leak = Leaky()
        del leak
    assert (printed, broken.calls) == (["ValueError: the program's own error"], 1)
    assert [r.getMessage() for r in caplog.records] == [
        "massgen-tracing: internal error in setup.flush_before_unraisable (tracing continues): "
        "RuntimeError('bug in massgen-tracing')"]


def test_a_failing_flush_before_an_uncaught_traceback_still_prints_the_traceback(monkeypatch, caplog):
    printed: list[str] = []
    broken = _with_a_failing_flush(monkeypatch)
    monkeypatch.setattr(sys, "excepthook", lambda t, e, tb: printed.append(f"{t.__name__}: {e}"))
    setup._flush_before_uncaught_tracebacks()
    setup._flush_before_uncaught_tracebacks()  # once only: not wrapped twice
    with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
        sys.excepthook(ValueError, ValueError("the program's own error"), None)
    assert (printed, broken.calls) == (["ValueError: the program's own error"], 1)
    assert [r.getMessage() for r in caplog.records] == [
        "massgen-tracing: internal error in setup.flush_before_traceback (tracing continues): "
        "RuntimeError('bug in massgen-tracing')"]
