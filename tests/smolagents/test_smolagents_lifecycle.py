"""Instrument/uninstrument, coexistence with OpenInference, content hiding, the live processor, and
the guard: our own failures never break the agent."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

import pytest
from openinference.instrumentation import TraceConfig
from openinference.instrumentation.smolagents import SmolagentsInstrumentor as OpenInferenceInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sa_helpers import Traced, lookup, make_provider
from smolagents.agents import MultiStepAgent
from smolagents.models import Model
from smolagents.tools import Tool

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.processor import LiveStepProcessor
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.sinks import CallbackSink
from massgen_tracing.smolagents import SmolagentsInstrumentor, _attributes
from massgen_tracing.testing.smolagents_models import ScriptedModel, code, final_answer, tool_call
from smolagents import CodeAgent, ToolCallingAgent, local_python_executor
from support.ids import Sequential

PATCHED = {MultiStepAgent: ("run", "__call__", "_generate_planning_step", "_step_stream",
                            "_handle_max_steps_reached"),
           Model: ("generate", "generate_stream"),
           Tool: ("__call__",)}


def class_tree(base: type) -> list[type]:
    out, stack = [], [base]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


def snapshot() -> dict[tuple[type, str], Any]:
    state: dict[tuple[type, str], Any] = {}
    for base, names in PATCHED.items():
        for cls in class_tree(base):
            for name in (*names, "__init_subclass__"):
                state[(cls, name)] = cls.__dict__.get(name)
    state[(local_python_executor.PrintContainer, "__iadd__")] = local_python_executor.PrintContainer.__iadd__
    state[(local_python_executor, "ThreadPoolExecutor")] = local_python_executor.ThreadPoolExecutor  # type: ignore[index]
    return state


@contextmanager
def instrumented(provider: TracerProvider) -> Iterator[None]:
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def weather_run() -> Any:
    model = ScriptedModel([tool_call("lookup", key="paris"), final_answer("sunny")])
    return ToolCallingAgent(tools=[lookup], model=model, name="w", verbosity_level=-1).run("Paris?")


def test_the_entry_point_names_this_instrumentor_for_smolagents_1_20_and_later() -> None:
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "massgen_smolagents"]
    assert ep.load() is SmolagentsInstrumentor
    assert list(SmolagentsInstrumentor().instrumentation_dependencies()) == ["smolagents >= 1.20"]


def test_uninstrument_restores_every_original_and_stops_tracing() -> None:
    before = snapshot()
    provider, recorded = make_provider()
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    class LateModel(ScriptedModel):
        def generate(self, *args: Any, **kwargs: Any) -> Any:
            return super().generate(*args, **kwargs)

    patched_late = LateModel.__dict__["generate"]
    instrumentor.uninstrument()
    after = snapshot()

    assert {k: v for k, v in after.items() if k[0] is not LateModel} == before
    assert LateModel.__dict__["generate"] is not patched_late  # restored to the user's own function
    assert LateModel.__dict__["generate"].__qualname__.endswith("LateModel.generate")
    assert "__init_subclass__" not in Model.__dict__

    assert weather_run() == "sunny"
    assert recorded.spans() == []


def test_the_patched_methods_include_a_users_subclass_and_the_code_executor() -> None:
    before = snapshot()
    provider, _ = make_provider()
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        during = snapshot()
    finally:
        instrumentor.uninstrument()
    changed = {f"{getattr(k[0], '__name__', k[0])}.{k[1]}" for k, v in during.items() if before.get(k) is not v}
    assert {"MultiStepAgent.run", "MultiStepAgent.__call__", "MultiStepAgent._generate_planning_step",
            "MultiStepAgent._handle_max_steps_reached", "CodeAgent._step_stream", "ToolCallingAgent._step_stream",
            "Model.generate", "OpenAIModel.generate", "OpenAIModel.generate_stream", "ScriptedModel.generate",
            "ScriptedModel.generate_stream", "Tool.__call__", "PipelineTool.__call__", "PrintContainer.__iadd__",
            "smolagents.local_python_executor.ThreadPoolExecutor", "Model.__init_subclass__",
            "Tool.__init_subclass__", "MultiStepAgent.__init_subclass__"} <= changed


def test_an_active_openinference_instrumentor_is_replaced_so_each_step_has_one_span() -> None:
    provider, recorded = make_provider()
    upstream = OpenInferenceInstrumentor()
    upstream.instrument(tracer_provider=provider)
    ours = SmolagentsInstrumentor()
    ours.instrument(tracer_provider=provider)
    try:
        # opentelemetry-instrument may load OpenInference's entry point after ours: that must stay a no-op
        upstream.instrument(tracer_provider=provider)
        assert weather_run() == "sunny"
    finally:
        ours.uninstrument()
    assert not upstream.is_instrumented_by_opentelemetry
    assert recorded.tree() == "\n".join([
        "invoke_agent w [run] OK",
        "  Step 1 [action] OK",
        "    chat scripted [llm] OK",
        "    execute_tool lookup [tool] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])


def test_our_failing_start_hook_leaves_that_step_untraced_and_the_run_correct(
        traced: Traced, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_attributes, "action_start", broken)

    assert weather_run() == "sunny"

    # The action steps could not be traced; everything around them still is, in one trace.
    assert traced.tree() == "\n".join([
        "invoke_agent w [run] OK",
        "  chat scripted [llm] OK",
        "  execute_tool lookup [tool] OK",
        "  chat scripted [llm] OK",
        "  final_answer [final_answer] OK",
    ])
    assert "internal error in smolagents.action_start" in caplog.text


def test_our_failing_end_hook_still_ends_every_span_and_the_run_is_correct(
        traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_attributes, "llm_end", broken)
    monkeypatch.setattr(_attributes, "code_error_line", broken)
    model = ScriptedModel([code("1 / 0"), code("final_answer('ok')")])

    assert CodeAgent(tools=[], model=model, name="coder", verbosity_level=-1).run("Go") == "ok"

    assert traced.unended() == []
    assert traced.tree() == "\n".join([
        "invoke_agent coder [run] OK",
        "  Step 1 [action] ERROR",
        "    chat scripted [llm] OK",
        "  Step 2 [action] OK",
        "    chat scripted [llm] OK",
        "    final_answer [final_answer] OK",
    ])


def test_our_failing_hook_raises_under_the_test_suite_so_bugs_cannot_hide(
        traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in massgen-tracing")

    monkeypatch.setattr(_attributes, "run_end", broken)

    with pytest.raises(RuntimeError, match="bug in massgen-tracing"):
        weather_run()


def test_hidden_inputs_and_outputs_also_hide_our_content_attributes() -> None:
    provider, recorded = make_provider()
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider, config=TraceConfig(hide_inputs=True, hide_outputs=True))
    try:
        model = ScriptedModel(["Thought: x\n<code>\nprint('secret log')\nfinal_answer('secret answer')\n</code>"])
        CodeAgent(tools=[], model=model, name="c", stream_outputs=True, verbosity_level=-1).run("secret task")
    finally:
        instrumentor.uninstrument()

    run, step, llm = (recorded.span(n) for n in ("invoke_agent c", "Step 1", "chat scripted"))
    assert recorded.start_attributes(run)[c.RUN_INPUT] == "__REDACTED__"
    assert run.attributes[c.OUTPUT_VALUE] == "__REDACTED__"
    assert step.attributes[c.CODE] == "__REDACTED__"
    assert {attrs.get(c.LOG_TEXT) for name, attrs in recorded.events(step) if name == c.EVENT_LOG} == {"__REDACTED__"}
    assert {attrs[c.DELTA_TEXT] for _, attrs in recorded.events(llm)} == {"__REDACTED__"}
    everything = repr([(s.attributes, [e.attributes for e in s.events]) for s in recorded.spans()])
    assert "secret" not in everything


def test_the_live_step_processor_gets_each_step_at_start_with_its_identity() -> None:
    records: list[StepRecord] = []
    processor = LiveStepProcessor([CallbackSink(records.append)])
    provider, _ = make_provider()
    provider.add_span_processor(processor)
    with instrumented(provider):
        assert weather_run() == "sunny"
    deadline = time.monotonic() + 5
    while not processor.force_flush(100) and time.monotonic() < deadline:
        pass

    assert [(r.type, r.kind if r.type != "event" else r.event, r.step_name if r.type != "event" else None)
            for r in records] == [
        ("start", "run", "w"),
        ("event", c.EVENT_PROGRESS, None),
        ("start", "action", "w"),
        ("start", "llm", "scripted"),
        ("end", "llm", "scripted"),
        ("event", c.EVENT_TOOL_DECISION, None),
        ("start", "tool", "lookup"),
        ("end", "tool", "lookup"),
        ("end", "action", "w"),
        ("event", c.EVENT_PROGRESS, None),
        ("start", "action", "w"),
        ("start", "llm", "scripted"),
        ("end", "llm", "scripted"),
        ("event", c.EVENT_TOOL_DECISION, None),
        ("start", "final_answer", "final_answer"),
        ("end", "final_answer", "final_answer"),
        ("end", "action", "w"),
        ("end", "run", "w"),
    ]
    processor.shutdown()


def test_a_secret_in_a_tool_result_is_masked_though_smolagents_wraps_it_in_a_str_subclass() -> None:
    # smolagents hands every tool result on as AgentText, a str subclass: masking that looked only at
    # exact strs let tool results (and final answers) through untouched, to sinks and exporters alike.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from massgen_tracing._internal.redact import Redactor
    from smolagents import tool

    key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0h"

    @tool
    def get_key() -> str:
        """Returns the deploy key."""
        return f"the key is {key}"

    records: list[StepRecord] = []
    processor = LiveStepProcessor([CallbackSink(records.append)], redactor=Redactor())
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        model = ScriptedModel([tool_call("get_key"), final_answer(f"done: {key}")])
        answer = ToolCallingAgent(tools=[get_key], model=model, verbosity_level=-1).run("get the key")
    finally:
        instrumentor.uninstrument()
    assert answer == f"done: {key}"  # the program's own values are never touched
    assert processor.force_flush(5000)
    spans = exporter.get_finished_spans()
    tool_span = next(s for s in spans if s.name == "execute_tool get_key")
    assert tool_span.attributes[c.OUTPUT_VALUE] == "the key is [REDACTED:openai_key]"
    exported = repr([(s.attributes, [e.attributes for e in s.events], s.status.description) for s in spans])
    assert key not in exported and exported.count("[REDACTED:openai_key]") >= 4
    assert key not in repr([r.to_dict() for r in records])
    processor.shutdown()


def test_a_programs_random_seed_does_not_repeat_trace_or_span_ids(traced: Traced) -> None:
    # The SDK's default generator draws from the `random` module: a program seeding it for reproducible
    # runs would give every run the same trace id, and backends would merge them into one trace.
    runs: list[set[int]] = []
    for _ in range(2):
        random.seed(0)
        assert weather_run() == "sunny"
        runs.append({s.context.span_id for s in traced.spans()} - set().union(*runs))
    assert len(traced.trace_ids()) == 2
    assert len(runs[0]) == len(runs[1]) == len(traced.spans()) // 2


def test_a_providers_own_id_generator_is_kept() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=Sequential(7000), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with instrumented(provider):
        assert weather_run() == "sunny"
    spans = exporter.get_finished_spans()
    ids = sorted({s.context.trace_id for s in spans} | {s.context.span_id for s in spans})
    assert ids == list(range(7000, 7000 + len(spans) + 1))
