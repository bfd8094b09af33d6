"""Step spans start through the SDK tracer directly (`_TracerView`), with ids the program's seed cannot repeat."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from lg_graphs import REACT_TREE, react_graph, react_model
from lg_tracing import start_tracing
from openinference.instrumentation import OITracer, TraceConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from massgen_tracing._internal import guard
from massgen_tracing._internal.ids import IDS
from massgen_tracing.langgraph import LangGraphInstrumentor
from massgen_tracing.langgraph import _tracer as lg_tracer
from support.ids import Sequential

QUESTION = {"messages": [("user", "What is 1 + 2?")]}


def test_spans_take_our_seed_proof_ids_when_the_provider_has_the_default_generator(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours = Sequential(1000)
    monkeypatch.setattr(IDS, "generate_span_id", ours.generate_span_id)
    monkeypatch.setattr(IDS, "generate_trace_id", ours.generate_trace_id)
    traced, stop = start_tracing(monkeypatch)
    try:
        react_graph(react_model()).invoke(QUESTION)
    finally:
        stop()
    assert traced.render() == REACT_TREE
    # One trace id and a span id per span, all from our generator (where OpenInference would use its own).
    ids = sorted({s.context.trace_id for s in traced.spans} | {s.context.span_id for s in traced.spans})
    assert ids == list(range(1000, 1000 + len(traced.spans) + 1))


def test_a_programs_random_seed_does_not_repeat_trace_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    traced, stop = start_tracing(monkeypatch)
    try:
        for _ in range(2):
            random.seed(0)
            react_graph(react_model()).invoke(QUESTION)
    finally:
        stop()
    assert len({s.context.trace_id for s in traced.spans}) == 2
    assert len({s.context.span_id for s in traced.spans}) == len(traced.spans)


def test_spans_take_the_providers_own_id_generator_when_it_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=Sequential(5000), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    instrumentor = LangGraphInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        react_graph(react_model()).invoke(QUESTION)
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    ids = sorted({s.context.trace_id for s in spans} | {s.context.span_id for s in spans})
    assert ids == list(range(5000, 5000 + len(spans) + 1))


def test_a_view_missing_what_start_span_reads_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = OITracer(TracerProvider(shutdown_on_exit=False).get_tracer("t"), TraceConfig())
    monkeypatch.delattr(sdk.__wrapped__, "_span_limits")
    assert lg_tracer._span_starter(sdk) == (sdk, SDKTracer.start_span)


def test_a_tracer_that_is_not_the_sdks_is_used_as_openinference_uses_it() -> None:
    noop = OITracer(trace.NoOpTracer(), TraceConfig())
    assert lg_tracer._span_starter(noop) == (noop, trace.NoOpTracer.start_span)
    sdk = OITracer(TracerProvider(shutdown_on_exit=False).get_tracer("t"), TraceConfig())
    view, start = lg_tracer._span_starter(sdk)
    assert isinstance(view, lg_tracer._TracerView) and start is SDKTracer.start_span


class OwnStartSpan(SDKTracer):
    """Like Logfire's proxy tracer: an SDK Tracer subclass with its own start_span and no SDK __init__."""

    def __init__(self, inner: SDKTracer) -> None:
        self.inner = inner
        self.started: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.started.append(name)
        return self.inner.start_span(name, *args, **kwargs)


class OwnProvider:
    def __init__(self, tracer: OwnStartSpan) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> OwnStartSpan:
        return self.tracer


def test_a_tracer_subclass_with_its_own_start_span_starts_every_span(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    own = OwnStartSpan(provider.get_tracer("inner"))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    instrumentor = LangGraphInstrumentor()
    instrumentor.instrument(tracer_provider=OwnProvider(own))
    try:
        out = react_graph(react_model()).invoke(QUESTION)
    finally:
        instrumentor.uninstrument()
    assert out["messages"][-1].content == "The sum is 3."
    spans = exporter.get_finished_spans()
    assert sorted(own.started) == sorted(s.name for s in spans)  # steps too: through its start_span
    assert "invoke_workflow react" in own.started


def test_a_failing_view_falls_back_to_openinferences_start_and_the_graph_is_unharmed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MASSGEN_TRACING_STRICT", "0")
    monkeypatch.setattr(guard, "_reported", set())

    def broken(self: Any) -> Any:
        raise RuntimeError("bug in massgen-tracing")

    traced, stop = start_tracing(monkeypatch)
    monkeypatch.setattr(lg_tracer._TracerView, "sampler", property(broken))  # after its checks at instrument()
    try:
        with caplog.at_level(logging.WARNING, logger="massgen_tracing"):
            out = react_graph(react_model()).invoke(QUESTION)
    finally:
        stop()
    assert out["messages"][-1].content == "The sum is 3."
    assert traced.render() == REACT_TREE  # every step span started by OITracer.start_span instead
    assert [r.getMessage() for r in caplog.records] == [
        "massgen-tracing: internal error in langgraph.start_span (tracing continues): "
        "RuntimeError('bug in massgen-tracing')"]
