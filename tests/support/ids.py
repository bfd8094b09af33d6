"""An id generator whose ids a test can predict."""

from __future__ import annotations

import itertools

from opentelemetry.sdk.trace.id_generator import IdGenerator


class Sequential(IdGenerator):
    """Trace and span ids counting up from `start`, one sequence for both."""

    def __init__(self, start: int) -> None:
        self._ids = itertools.count(start)

    def generate_span_id(self) -> int:
        return next(self._ids)

    def generate_trace_id(self) -> int:
        return next(self._ids)
