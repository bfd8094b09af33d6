"""The base of our instrumentors: OpenTelemetry's `BaseInstrumentor`, safe against MASSGEN_TRACING's
activation hook, which fires inside `_instrument` when importing the framework and instruments again."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]  # untyped package


class Instrumentor(BaseInstrumentor):  # type: ignore[misc]  # BaseInstrumentor is untyped
    """Subclasses implement `_instrument_now` instead of `_instrument`."""

    def instrument(self, **kwargs: Any) -> Any:
        # MASSGEN_TRACING=1 instruments at import; `opentelemetry-instrument` then loads our entry point
        # and calls this again: already done, and not worth BaseInstrumentor's warning on stderr.
        if self._is_instrumented_by_opentelemetry:
            return None
        return super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        # With MASSGEN_TRACING=1, importing the framework in `_instrument_now` fires the activation hook,
        # which instruments through this same (singleton) instrumentor: mark it instrumented first, so
        # that nested call is skipped instead of running on half-imported modules (an explicit
        # `instrument()`, `configure()` or `opentelemetry-instrument` with the variable also set).
        self._is_instrumented_by_opentelemetry = True
        try:
            self._instrument_now(**kwargs)
        except BaseException:
            self._is_instrumented_by_opentelemetry = False
            raise

    def _instrument_now(self, **kwargs: Any) -> None:
        raise NotImplementedError
