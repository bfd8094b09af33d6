"""Fixtures for the smolagents instrumentor: a fresh provider per test, instrumented around the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sa_helpers import Traced, make_provider

from massgen_tracing.smolagents import SmolagentsInstrumentor


@pytest.fixture
def provider_and_traced() -> tuple[TracerProvider, Traced]:
    return make_provider()


@pytest.fixture
def traced(provider_and_traced: tuple[TracerProvider, Traced]) -> Iterator[Traced]:
    provider, recorded = provider_and_traced
    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield recorded
    finally:
        instrumentor.uninstrument()
    # Nothing of ours may stay attached once a test's runs are over.
    assert not trace.get_current_span().get_span_context().is_valid
