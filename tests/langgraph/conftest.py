"""Fixtures for the LangGraph instrumentor tests (helpers in `lg_tracing.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lg_tracing import Traced, start_tracing


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traced]:
    """LangGraph instrumented into a fresh provider for this test, uninstrumented after it."""
    result, stop = start_tracing(monkeypatch)
    try:
        yield result
    finally:
        stop()
