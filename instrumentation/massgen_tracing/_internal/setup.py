"""`configure()` and `shutdown()`: build or join the tracer provider, exporters, sinks, instrumentors.

Attaches to a host's SDK provider (Logfire, MassGen, Langfuse…) instead of replacing it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from massgen_tracing._internal.guard import internal, tell, weak_hook
from massgen_tracing._internal.settings import Settings, resolve
from massgen_tracing._internal.sinks import Sink

logger = logging.getLogger("massgen_tracing")
_lock = threading.RLock()


@dataclass
class State:
    settings: Settings
    provider: Any  # the SDK TracerProvider we created or attached to
    owns_provider: bool
    processor: Any  # LiveStepProcessor
    exporters: list[Any] = field(default_factory=list)
    span_processors: list[Any] = field(default_factory=list)  # exporter processors we added
    instrumentors: list[Any] = field(default_factory=list)


_state: State | None = None


def current() -> State | None:
    return _state


def _otlp_endpoint(settings: Settings) -> str | None:
    value: str | None = settings["endpoint"]
    origin = settings.values["endpoint"].origin
    protocol = settings["protocol"]
    if value is None:
        return None
    if protocol == "grpc":
        return value
    if origin.endswith("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or origin == "argument":
        return value
    return value.rstrip("/") + "/v1/traces"


def exporter_plan(settings: Settings) -> list[tuple[str, str | None]]:
    """[(exporter, endpoint)] the settings ask for; used by configure() and doctor."""
    names = settings["traces_exporter"]
    if names is None:
        names = ("otlp",) if settings["endpoint"] is not None else ()
    plan: list[tuple[str, str | None]] = []
    for name in names:
        if name == "otlp":
            ep = _otlp_endpoint(settings)
            if ep is None:
                ep = "http://localhost:4317" if settings["protocol"] == "grpc" else "http://localhost:4318/v1/traces"
            plan.append((f"otlp {settings['protocol']}", ep))
        elif name == "console":
            plan.append(("console", None))
    return plan


class _PromptExporter:
    """Wraps an OTLP exporter so shutdown is bounded: `budget` seconds after shutdown begins, the inner
    exporter's own shutdown signal aborts its retry back-off (the plain SDK waits ~7 s for a dead
    collector). A request already waiting on a collector that never answers is not cut by that signal;
    `shutdown()` below stops waiting for it instead (see `_shutdown_batch_processor`).

    The watchdog thread that fires is started with the exporter, not at shutdown: from Python 3.12 on,
    no thread can be started once the interpreter is finalizing, which is when atexit runs.
    """

    def __init__(self, inner: Any, budget: float, endpoint: str | None = None):
        self._inner = inner
        self._budget = budget
        self.endpoint = endpoint
        self._exporting = 0  # exports begun and not yet returned, to name an abandoned one at shutdown
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._armed = threading.Event()
        self._start_watchdog()
        if hasattr(os, "register_at_fork"):  # a forked child has no copy of the watchdog thread
            os.register_at_fork(after_in_child=weak_hook(self._after_fork_in_child, "exporter.after_fork"))

    def _start_watchdog(self) -> None:
        threading.Thread(target=self._watch, name="massgen-tracing-exporter-watchdog", daemon=True).start()

    def _after_fork_in_child(self) -> None:
        self._stop_lock = threading.Lock()  # the parent's may have been held at the fork
        if not self._stopped.is_set():
            self._armed = threading.Event()
            self._start_watchdog()

    def _watch(self) -> None:
        armed = self._armed
        armed.wait()
        if not self._stopped.wait(max(0.0, self._budget)):
            self._stop_inner()

    def export(self, spans: Sequence[Any]) -> Any:
        # The batch processor serializes its exports (one lock for worker and force_flush): a plain counter.
        self._exporting += 1
        try:
            return self._inner.export(spans)
        finally:
            self._exporting -= 1

    @property
    def exporting(self) -> bool:
        return self._exporting > 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))

    def begin_shutdown(self) -> None:
        """Arm the watchdog: an export still retrying when it fires is abandoned."""
        if self._budget <= 0:
            self._stop_inner()
            return
        self._armed.set()

    def _stop_inner(self) -> None:
        with self._stop_lock:  # the watchdog and the program's own shutdown may both get here
            if self._stopped.is_set():
                return
            self._stopped.set()
        with internal("exporter.shutdown"):
            self._inner.shutdown()

    def shutdown(self) -> None:
        self._stop_inner()


def _make_exporters(settings: Settings) -> list[Any]:
    out: list[Any] = []
    budget = float(settings["shutdown_timeout"])
    for name, endpoint in exporter_plan(settings):
        if name == "otlp grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            insecure = endpoint is not None and endpoint.startswith("http://")
            out.append(_PromptExporter(GrpcExporter(endpoint=endpoint, insecure=insecure), budget, endpoint))
        elif name.startswith("otlp"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            out.append(_PromptExporter(HttpExporter(endpoint=endpoint), budget, endpoint))
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            out.append(ConsoleSpanExporter(out=sys.stdout))  # the stdout of now, not of import time
    return out


def _default_sinks(settings: Settings) -> list[Sink]:
    sinks: list[Sink] = []
    from massgen_tracing._internal.console import make_console_sink

    mode = settings["console"]
    if mode == "auto" and settings.values["console"].origin == "default" and "massgen" in sys.modules:
        # Inside MassGen its own display shows the steps (our MassGen tools feed it); a second live view
        # on the same terminal would garble MassGen's. An explicit MASSGEN_TRACING_CONSOLE still wins.
        mode = "off"
    console = make_console_sink(mode)
    if console is not None:
        sinks.append(console)
    path = settings["file"]
    if path:
        from massgen_tracing._internal.sinks import JsonlSink

        try:
            sinks.append(JsonlSink(path))
        except OSError as exc:
            tell(f"massgen-tracing: MASSGEN_TRACING_FILE={path!r} cannot be opened ({_why(exc, path)}); "
                 "no JSONL record is written.")
    return sinks


def _why(exc: OSError, path: str) -> str:
    if isinstance(exc, FileExistsError) and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        return "a parent of the path is a file, not a directory"  # what makedirs meant by "File exists"
    return exc.strerror or str(exc)


# Attributes a span of our provider keeps (OpenTelemetry's default: 128). OpenInference writes ~3
# attributes per message of a model call's input, so at 128 a 20-step agent's later model calls lost
# their oldest ones: the conversation's first messages (its instructions) in every backend, and before
# the processor put it back, the step's identity. `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT` and
# `OTEL_ATTRIBUTE_COUNT_LIMIT` still decide when set.
SPAN_ATTRIBUTE_LIMIT = 4096


def _span_limits() -> Any:
    from opentelemetry.sdk.trace import SpanLimits

    if os.environ.get("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") or os.environ.get("OTEL_ATTRIBUTE_COUNT_LIMIT"):
        return SpanLimits()  # the SDK reads (and checks) them itself
    return SpanLimits(max_span_attributes=SPAN_ATTRIBUTE_LIMIT)


def _program_name() -> str:
    """A readable default service name: the script, or the package of `python -m pkg`."""
    path = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "__main__":
        stem = os.path.basename(os.path.dirname(path))
    return stem if stem and stem != "-c" else "python"


def _host_provider() -> Any | None:
    """The SDK provider someone already installed globally, or None."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    # Logfire wraps its SDK provider in a proxy that still offers add_span_processor.
    if hasattr(provider, "add_span_processor") and not type(provider).__name__.startswith("NoOp"):
        return provider
    return None


def configure(
    *,
    sinks: Iterable[Sink] | None = None,
    tracer_provider: Any | None = None,
    instrument: bool = True,
    **options: Any,
) -> State | None:
    """Switch tracing on for this process. Keyword options are the settings (see docs/configuration.md);
    anything not given comes from the environment, then defaults.

    `sinks` replaces the default sinks (console and JSONL file) with your own; `tracer_provider`
    attaches to that provider instead of the global one. Calling it again returns the same state.
    """
    global _state
    with _lock:
        if _state is not None:
            if sinks:
                for s in sinks:
                    _state.processor.add_sink(s)
            return _state
        settings = resolve(options)
        if settings["sdk_disabled"]:
            return None
        if not settings["capture_content"]:
            os.environ.setdefault("OPENINFERENCE_HIDE_INPUTS", "true")
            os.environ.setdefault("OPENINFERENCE_HIDE_OUTPUTS", "true")
            os.environ.setdefault("OPENINFERENCE_HIDE_INPUT_MESSAGES", "true")
            os.environ.setdefault("OPENINFERENCE_HIDE_OUTPUT_MESSAGES", "true")

        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from massgen_tracing._internal.processor import LiveStepProcessor
        from massgen_tracing._internal.redact import Redactor

        redactor = None
        if settings["redact"]:
            extra = [settings["redact_patterns"]] if settings["redact_patterns"] is not None else []
            redactor = Redactor(extra)
        processor = LiveStepProcessor(
            _default_sinks(settings) if sinks is None else list(sinks),
            queue_size=int(settings["queue_size"]),
            max_value_length=int(settings["max_value_length"]),
            redactor=redactor,
            shutdown_timeout=float(settings["shutdown_timeout"]),
        )
        provider = tracer_provider if tracer_provider is not None else _host_provider()
        owns = provider is None
        exporters: list[Any] = []
        span_processors: list[Any] = []
        if owns:
            attrs: dict[str, Any] = {}
            env_has_name = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
                "OTEL_RESOURCE_ATTRIBUTES", "")
            if not env_has_name:
                attrs["service.name"] = _program_name()
            if settings["project"]:
                attrs["openinference.project.name"] = settings["project"]
            provider = TracerProvider(resource=Resource.create(attrs), shutdown_on_exit=False,
                                      span_limits=_span_limits())
            exporters = _make_exporters(settings)
            for exp in exporters:
                bsp = BatchSpanProcessor(exp)
                provider.add_span_processor(bsp)
                span_processors.append(bsp)
            # After the batch processors: a run's last span has reached them when the live processor
            # sees it end, which a child process relies on to send it at once (`_send_from_child`).
            # (Masking does not depend on the order: `_on_ending` runs before any processor's on_end.)
            provider.add_span_processor(processor)
            if span_processors:
                processor.after_child_run = _send_from_child
            trace.set_tracer_provider(provider)
            _yield_to_a_later_host()
        else:
            # The host chose exporters; we add only the live pipeline (and redaction).
            assert provider is not None
            provider.add_span_processor(processor)
        _state = State(settings, provider, owns, processor, exporters, span_processors)
        atexit.register(shutdown)
        _watch_forks()
        _flush_before_uncaught_tracebacks()
        if instrument:
            instrument_frameworks(settings["frameworks"], provider)
        return _state


_CHILD_EXPORT_S = 0.5
_child_export_gave_up = False


def _send_from_child() -> None:
    """Export what the batch processors hold, as a run ends in a child process, waiting at most 0.5 s.

    A `multiprocessing` pool worker is killed by `Pool.terminate()` (the end of `with Pool() as pool:`) and
    a child of `os.fork()` usually leaves with `os._exit()`: no exit hook runs, and the spans the batch
    processors still held were never sent. The SDK's `force_flush` exports on the calling thread with no
    bound, so it runs on a thread of its own; if the collector does not take the spans within the bound,
    this process stops waiting for it (it would cost every later run the same wait).
    """
    global _child_export_gave_up
    st = _state
    if st is None or _child_export_gave_up:
        return
    done = threading.Event()

    def send() -> None:
        with internal("setup.send from child"):
            for bsp in st.span_processors:
                bsp.force_flush()
        done.set()

    threading.Thread(target=send, name="massgen-tracing-child-export", daemon=True).start()
    if not done.wait(_CHILD_EXPORT_S):
        _child_export_gave_up = True
        logger.warning("massgen-tracing: the collector did not take this process's spans within %.1fs; "
                       "spans still queued when the process is killed are lost", _CHILD_EXPORT_S)


def _yield_to_a_later_host() -> None:
    """Let a host install its own global provider after ours, as if it had gone first.

    With `MASSGEN_TRACING=1` our provider becomes the global one as LangGraph or smolagents finishes
    importing; a program that sets up its own tracing afterwards (in `main()`, say) then got "Overriding
    of current TracerProvider is not allowed" and lost its exporters altogether: its own spans, and
    ours, never reached them. OpenTelemetry allows one global provider; every setter goes through
    `trace._set_tracer_provider` (private, so checked): ours hands the place over instead.
    """
    from opentelemetry import trace

    original = getattr(trace, "_set_tracer_provider", None)
    if original is None or getattr(original, "_massgen_tracing", False) or not hasattr(
            trace, "_TRACER_PROVIDER_SET_ONCE"):
        return

    def _set_tracer_provider(tracer_provider: Any, log: bool) -> None:
        handed = False
        with internal("setup.hand over to the host's provider"):
            handed = _hand_over(tracer_provider, original, log)
        if not handed:
            original(tracer_provider, log)

    _set_tracer_provider._massgen_tracing = True  # type: ignore[attr-defined]
    trace._set_tracer_provider = _set_tracer_provider


def _hand_over(host: Any, set_provider: Any, log: bool) -> bool:
    """Make `host` the global provider in place of ours and move the live pipeline and the instrumentation
    to it (the host keeps its exporters; spans already started on ours end there). False: not ours to
    hand over (nothing done)."""
    from opentelemetry import trace

    with _lock:
        st = _state
        if (st is None or not st.owns_provider or host is st.provider or not hasattr(host, "add_span_processor")
                or getattr(trace, "_TRACER_PROVIDER", None) is not st.provider):
            return False
        once = trace._TRACER_PROVIDER_SET_ONCE
        trace._TRACER_PROVIDER_SET_ONCE = type(once)()  # OTel's private Once, fresh
        set_provider(host, log)
        in_place = trace.get_tracer_provider() is host
        if not in_place:  # someone else got in between: leave it
            return True
        host.add_span_processor(st.processor)
        ours: Any = st.provider
        if hasattr(ours, "add_span_processor") and hasattr(getattr(host, "_active_span_processor", None),
                                                           "_span_processors"):
            ours.add_span_processor(_ToHost(host, st.processor))
        st.provider, st.owns_provider = host, False
        for inst in st.instrumentors:
            inst.uninstrument()
            inst.instrument(tracer_provider=host, skip_dep_check=True)
        # The host's provider registered its exit hook when it was made, after ours: it would run first and
        # shut its exporters (and our processor) before ours ends the steps still open (a stream the
        # program still holds), and those spans never reached the host's backend. Registered now, this
        # runs before the host's.
        atexit.register(_end_open_spans_before_the_host)
    return True


class _ToHost:
    """On our provider once a host's took its place: spans of tracers the program got from ours before
    (a module-level `tracer = trace.get_tracer(...)` after importing LangGraph, a provider set up in
    `main()`) reach the host's processors too, as they would had the host gone first. Without it those
    spans never reached the host's exporters: a program that printed or checked its own spans saw them
    vanish. They keep our provider's resource. The host's processor list is read at each span (it may
    add more), less our live processor, which is on both providers."""

    def __init__(self, host: Any, live: Any) -> None:
        self._host = host._active_span_processor
        self._live = live

    def _targets(self) -> tuple[Any, ...]:
        targets: tuple[Any, ...] = ()
        with internal("setup.forward to the host's provider"):
            targets = tuple(p for p in self._host._span_processors if p is not self._live)
        return targets

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for p in self._targets():
            with internal("setup.forward to the host's provider"):
                p.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        for p in self._targets():
            if hasattr(p, "_on_ending"):  # the SDK's, since 1.26
                with internal("setup.forward to the host's provider"):
                    p._on_ending(span)

    def on_end(self, span: Any) -> None:
        for p in self._targets():
            with internal("setup.forward to the host's provider"):
                p.on_end(span)

    def shutdown(self) -> None:
        pass  # the host's processors are the host's to shut down

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _end_open_spans_before_the_host() -> None:
    st = _state
    if st is not None:
        with internal("setup.end open spans before the host's shutdown"):
            st.processor.end_open_spans()


_TRACEBACK_FLUSH_MS = 300


def _flush_before_uncaught_tracebacks() -> None:
    """Our lines for the steps an uncaught exception ended go out before its traceback, not into it.

    The interpreter writes the traceback in pieces from the main thread while the sink threads write
    the failed run's last lines from theirs: plain lines landed mid-traceback, or after it. The hook in
    place now (the default, or the program's own) still prints the traceback, after a bounded flush.
    The same for `sys.unraisablehook`'s "Exception ignored in: ..." (a failing `__del__`, a generator
    that ignored `GeneratorExit`): a line of ours landed between its first line and its traceback.
    """
    for name, site in (("excepthook", "setup.flush_before_traceback"),
                       ("unraisablehook", "setup.flush_before_unraisable")):
        previous = getattr(sys, name, None)
        if previous is None or getattr(previous, "_massgen_tracing_flush", False):
            continue
        setattr(sys, name, _flushing_first(previous, site))


def _flushing_first(previous: Any, site: str) -> Any:
    def hook(*args: Any) -> None:
        state = _state
        # Not from a sink's own thread (a finalizer can run there): it would wait for itself.
        if state is not None and not threading.current_thread().name.startswith("massgen-tracing-"):
            with internal(site):
                state.processor.force_flush(_TRACEBACK_FLUSH_MS)
        previous(*args)

    hook._massgen_tracing_flush = True  # type: ignore[attr-defined]
    return hook


_fork_hook_installed = False


def _watch_forks() -> None:
    global _fork_hook_installed
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        _fork_hook_installed = True
        os.register_at_fork(after_in_child=_in_forked_child)


class _ForkToken:
    """multiprocessing keeps after-fork callbacks in a weak dictionary keyed by a live object."""


_FORK_TOKEN = _ForkToken()


def _in_forked_child() -> None:
    """A multiprocessing child ends with os._exit(), which skips atexit: flush its last records then.

    multiprocessing clears its exit finalizers as the child starts, then runs its after-fork
    callbacks: register one that registers the flush. (The processor's own fork hook restarts the
    sink threads; a child that exits normally runs the inherited atexit handler instead.)"""
    with internal("fork"):
        if _state is not None and "multiprocessing" in sys.modules:
            from multiprocessing import util

            util.register_after_fork(_FORK_TOKEN, _flush_when_child_exits)


def _flush_when_child_exits(_token: object) -> None:
    with internal("fork"):
        from multiprocessing import util

        util.Finalize(None, shutdown, exitpriority=0)


def attach_live_pipeline() -> None:
    """For instrumentors loaded by `opentelemetry-instrument` (no tracer_provider given): join the global
    provider the distro built with the live pipeline, once. Never raises."""
    with internal("attach live pipeline"):
        if _state is None and not _lock._is_owned():  # type: ignore[attr-defined]  # RLock: not inside configure()
            configure(instrument=False)


def instrument_frameworks(frameworks: Iterable[str], provider: Any | None = None) -> list[Any]:
    """Instrument each named framework that is installed; a missing one is skipped silently."""
    import importlib.util

    done: list[Any] = []
    for fw in frameworks:
        with internal(f"instrument {fw}"):
            module = "langgraph" if fw == "langgraph" else "smolagents"
            if importlib.util.find_spec(module) is None:
                continue
            inst: Any
            if fw == "langgraph":
                from massgen_tracing.langgraph import LangGraphInstrumentor

                inst = LangGraphInstrumentor()
            else:
                from massgen_tracing.smolagents import SmolagentsInstrumentor

                inst = SmolagentsInstrumentor()
            if not inst.is_instrumented_by_opentelemetry:
                inst.instrument(tracer_provider=provider, skip_dep_check=True)
                done.append(inst)
    if _state is not None:
        _state.instrumentors.extend(done)
    return done


def shutdown(timeout: float | None = None) -> None:
    """Flush and stop everything configure() started, within `timeout` seconds (default: the
    `shutdown_timeout` setting). Safe to call more than once; never raises."""
    global _state
    with _lock:
        st = _state
        _state = None
    if st is None:
        return
    with internal("shutdown"):
        budget = float(st.settings["shutdown_timeout"]) if timeout is None else timeout
        start = time.monotonic()
        for exp in st.exporters:
            if isinstance(exp, _PromptExporter):
                exp._budget = budget
                exp.begin_shutdown()
        st.processor._shutdown_timeout = budget
        st.processor.shutdown()
        for bsp, exp in zip(st.span_processors, st.exporters, strict=True):  # configure(): one per exporter
            if not isinstance(exp, _PromptExporter):
                # The console exporter: local and quick, so printed in full here as it always was.
                bsp.force_flush()
                bsp.shutdown()
                continue
            left = max(0.0, budget - (time.monotonic() - start))
            _shutdown_batch_processor(bsp, left)
            if exp.exporting:
                logger.warning("massgen-tracing: the collector at %s was unreachable or did not answer within "
                               "%.1fs at shutdown; the spans being sent to it were dropped", exp.endpoint, budget)
        for inst in st.instrumentors:
            with internal("uninstrument"):
                inst.uninstrument()


def _shutdown_batch_processor(bsp: Any, seconds: float) -> None:
    """Send what the SDK batch processor still holds, waiting at most `seconds` for it.

    Not `force_flush()` then `shutdown()`: the SDK's force_flush exports on the calling thread and ignores
    its timeout, and the HTTP exporter's request then waits up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s) for a
    collector that accepted the connection but never answers; our exporter's shutdown signal does not cut
    a request already waiting. The batch processor's own shutdown takes a timeout: its worker thread
    sends the last batches, and the join gives up after `seconds`, leaving a hung request to that daemon
    thread, which does not hold up the interpreter's exit. (`BatchSpanProcessor.shutdown()` itself waits
    up to 30 s, hence the processor it delegates to.)
    """
    inner = getattr(bsp, "_batch_processor", None)  # the SDK's delegate since 1.40; private, so checked
    if inner is None or not callable(getattr(inner, "shutdown", None)):
        bsp.force_flush(int(seconds * 1000))
        bsp.shutdown()
        return
    inner.shutdown(timeout_millis=seconds * 1000)
