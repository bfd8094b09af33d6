"""Every setting declared once, resolved once: argument → environment → default, with its origin.

A bad value never stops the program: one line on stderr names the variable, the value, what is
allowed and what is used instead. The handbook's configuration table is generated from `SETTINGS`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from massgen_tracing._internal.guard import tell

TRUE_WORDS = ("1", "true", "yes", "on")  # also the MassGen tools' yes/no presets
FALSE_WORDS = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Setting:
    name: str  # keyword of configure()
    env: tuple[str, ...]  # environment variables, first one set wins
    kind: str  # bool | int | float | str | choice | choices | regex | path | url
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("enabled", ("MASSGEN_TRACING",), "bool", False,
            "Switch tracing on in any Python process with no code change (read at interpreter start)."),
    Setting("console", ("MASSGEN_TRACING_CONSOLE",), "choice", "auto",
            "Terminal view on stderr: `auto` (live when stderr is a terminal, else plain; off inside MassGen, "
            "whose own display shows the steps), `live`, `plain`, `off`.",
            choices=("auto", "live", "plain", "off")),
    Setting("file", ("MASSGEN_TRACING_FILE",), "path", None,
            "Append one JSON line per step record to this file (schema in docs/records.md)."),
    Setting("frameworks", ("MASSGEN_TRACING_FRAMEWORKS",), "choices", ("langgraph", "smolagents"),
            "Comma-separated frameworks to instrument when they are imported.",
            choices=("langgraph", "smolagents")),
    Setting("capture_content", ("MASSGEN_TRACING_CAPTURE_CONTENT",), "bool", True,
            "Record inputs, outputs, messages and streamed text. `false` also sets OpenInference's "
            "`OPENINFERENCE_HIDE_INPUTS`/`OUTPUTS` unless they are set."),
    Setting("redact", ("MASSGEN_TRACING_REDACT",), "bool", True,
            "Mask API keys, bearer tokens and similar secrets before any sink or exporter sees them."),
    Setting("redact_patterns", ("MASSGEN_TRACING_REDACT_PATTERNS",), "regex", None,
            "One extra regular expression to mask (use `|` for several); matches become `[REDACTED]`."),
    Setting("project", ("MASSGEN_TRACING_PROJECT", "PHOENIX_PROJECT_NAME"), "str", None,
            "Phoenix project (resource attribute `openinference.project.name`)."),
    Setting("traces_exporter", ("OTEL_TRACES_EXPORTER",), "choices", None,
            "`otlp`, `console`, `none` (comma-separated). Unset: `otlp` when an endpoint variable is set, "
            "else no exporter (live view and file only).",
            choices=("otlp", "console", "none")),
    Setting("protocol", ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"), "choice",
            "http/protobuf", "OTLP transport: `http/protobuf` or `grpc`.", choices=("http/protobuf", "grpc")),
    Setting("endpoint", ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                         "PHOENIX_COLLECTOR_ENDPOINT"), "url", None,
            "Where OTLP goes. The traces variable is used as is; to the generic and Phoenix ones "
            "`/v1/traces` is appended for HTTP. Default `http://localhost:4318/v1/traces` "
            "(gRPC `http://localhost:4317`)."),
    Setting("sdk_disabled", ("OTEL_SDK_DISABLED",), "bool", False,
            "Standard OTel switch: when true nothing is configured or instrumented."),
    Setting("queue_size", ("MASSGEN_TRACING_QUEUE_SIZE",), "int", 10000,
            "Per-sink bound on queued event records; starts and ends are never dropped.", minimum=1),
    Setting("max_value_length", ("MASSGEN_TRACING_MAX_VALUE_LENGTH",), "int", 16384,
            "Longest string value kept in a step record (longer ones are cut and marked).", minimum=64),
    Setting("shutdown_timeout", ("MASSGEN_TRACING_SHUTDOWN_TIMEOUT",), "float", 0.5,
            "Seconds the program may spend at exit flushing sinks and exporters, even when the "
            "collector is unreachable.", minimum=0.0),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    value: Any
    origin: str  # "argument", "env VAR", "default", "default (VAR invalid)"


@dataclass
class Settings:
    values: dict[str, Resolved] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value


class _Invalid(ValueError):
    pass


def _allowed(s: Setting) -> str:
    if s.kind == "bool":
        return "one of 1, true, yes, on, 0, false, no, off"
    if s.kind == "choice":
        return "one of " + ", ".join(s.choices)
    if s.kind == "choices":
        return "a comma-separated list of " + ", ".join(s.choices)
    if s.kind == "int":
        return f"a whole number >= {int(s.minimum or 0)}"
    if s.kind == "float":
        return f"a finite number >= {s.minimum or 0}"
    if s.kind == "regex":
        return "a valid regular expression"
    if s.kind == "url":
        return "a URL like http://host:port"
    return "a string"


def _parse(s: Setting, raw: Any) -> Any:
    if s.kind == "bool":
        if isinstance(raw, bool):
            return raw
        v = str(raw).strip().lower()
        if v in TRUE_WORDS:
            return True
        if v in FALSE_WORDS:
            return False
        raise _Invalid
    if s.kind in ("int", "float"):
        try:
            num: float = int(str(raw).strip()) if s.kind == "int" else float(str(raw).strip())
        except ValueError:
            raise _Invalid from None
        if not math.isfinite(num) or (s.minimum is not None and num < s.minimum):  # nan/inf: no budget at all
            raise _Invalid
        return num
    if s.kind == "choice":
        v = str(raw).strip().lower()
        if v not in s.choices:
            raise _Invalid
        return v
    if s.kind == "choices":
        items = [p.strip().lower() for p in (raw.split(",") if isinstance(raw, str) else raw)]
        items = [p for p in items if p]
        if not items or any(p not in s.choices for p in items):
            raise _Invalid
        return tuple(dict.fromkeys(items))
    if s.kind == "regex":
        if raw is None or raw == "":
            return None
        try:
            return re.compile(str(raw))
        except re.error:
            raise _Invalid from None
    if s.kind == "url":
        v = str(raw).strip()
        if not re.match(r"^https?://[^\s/]+", v):
            raise _Invalid
        return v
    if s.kind == "path":
        v = str(raw).strip()
        return v or None
    return str(raw)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    if value is None:
        return "unset"
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> Settings:
    """Resolve every setting; invalid values fall back to the default with one clear message each."""
    env = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - set(BY_NAME)
    if unknown:
        raise TypeError(f"configure() got unknown setting(s) {sorted(unknown)}; allowed: {sorted(BY_NAME)}")
    out = Settings()
    for s in SETTINGS:
        if s.name in overrides:
            raw, origin, label = overrides[s.name], "argument", f"configure({s.name}=...)"
        else:
            var = next((v for v in s.env if env.get(v, "").strip() != ""), None)
            if var is None:
                out.values[s.name] = Resolved(s.default, "default")
                continue
            raw, origin, label = env[var], f"env {var}", var
        try:
            out.values[s.name] = Resolved(_parse(s, raw), origin)
        except _Invalid:
            msg = (f"massgen-tracing: {label}={str(raw)!r} is not valid: expected {_allowed(s)}; "
                   f"using {_show(s.default)}.")
            out.problems.append(msg)
            out.values[s.name] = Resolved(s.default, f"default ({label} invalid)")
            if report is not None:
                report(msg)
            else:
                tell(msg)
    return out


def describe(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(setting, variables, value, origin) rows for `massgen-trace doctor`."""
    return [(s.name, " / ".join(s.env), _show(settings.values[s.name].value), settings.values[s.name].origin)
            for s in SETTINGS]


def markdown_table() -> str:
    rows = ["| variable | `configure()` keyword | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| {' / '.join(f'`{v}`' for v in s.env)} | `{s.name}` | `{_show(s.default)}` | {s.doc} |")
    return "\n".join(rows) + "\n"
