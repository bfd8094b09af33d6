"""`massgen-trace`: the offline demo, replay of a JSONL record, and a configuration doctor."""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from importlib import metadata
from urllib.parse import urlparse


def _cmd_demo(args: argparse.Namespace) -> int:
    from massgen_tracing._internal.demo import run_demo

    if args.file is not None and os.path.isdir(args.file):
        print(f"massgen-trace demo: --file {args.file} is a directory; give a file path for the JSONL record",
              file=sys.stderr)
        return 2
    return int(run_demo(framework=args.framework, pace=0.0 if args.fast else args.pace, file=args.file,
                    console=args.console))


def _cmd_replay(args: argparse.Namespace) -> int:
    from massgen_tracing._internal.console import make_console_sink
    from massgen_tracing._internal.replay import load, replay, summarize

    if not os.path.exists(args.file):
        print(f"massgen-trace replay: no such file: {args.file}", file=sys.stderr)
        return 2
    if os.path.isdir(args.file):
        print(f"massgen-trace replay: {args.file} is a directory, not a JSONL record", file=sys.stderr)
        return 2
    if args.summary:
        print(summarize(load(args.file)))  # load() tolerates a line torn inside a UTF-8 sequence
        return 0
    try:
        sink = make_console_sink(args.console)
    except ValueError as exc:
        print(f"massgen-trace replay: {exc}", file=sys.stderr)
        return 2
    if sink is None:
        return 0
    speed = None if args.instant else args.speed
    try:
        n = replay(args.file, sink, speed=speed)
    finally:
        sink.close()
    print(f"replayed {n} records from {args.file}", file=sys.stderr)
    return 0


def _number(name: str, *, positive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number, > 0 or >= 0; argparse names the option in its error."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a positive' if positive else 'a non-negative'} finite number ({name})")
        return value

    return parse


def _probe_http(url: str, timeout: float) -> str:
    # An empty ExportTraceServiceRequest is a valid OTLP request: a collector answers 200.
    req = urllib.request.Request(url, data=b"", method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # user's own endpoint
            return f"answers (HTTP {resp.status})"
    except urllib.error.HTTPError as exc:
        return f"answers, but with HTTP {exc.code} (is this an OTLP endpoint?)"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"does NOT answer ({reason})"


def _probe_tcp(url: str, timeout: float) -> str:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host, port = parsed.hostname or "localhost", parsed.port or 4317
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return f"answers (TCP {host}:{port} open)"
    except OSError as exc:
        return f"does NOT answer ({exc.strerror or exc})"


def _cmd_doctor(args: argparse.Namespace) -> int:
    from massgen_tracing._internal.settings import describe, resolve
    from massgen_tracing._internal.setup import exporter_plan

    problems: list[str] = []
    settings = resolve(report=problems.append)
    print("massgen-tracing", metadata.version("massgen-tracing"))
    print()
    print("Settings (value, and where it came from):")
    rows = describe(settings)
    width = max(len(r[0]) for r in rows)
    for name, env, value, origin in rows:
        print(f"  {name:<{width}}  {value:<28} {origin:<34} [{env}]")
    for p in problems:
        print(f"  ! {p}")
    print()
    print("Activation:")
    import sysconfig

    pth = os.path.join(sysconfig.get_paths()["purelib"], "massgen_tracing.pth")
    print(f"  {pth}: {'installed' if os.path.exists(pth) else 'MISSING (MASSGEN_TRACING=1 will do nothing)'}")
    print(f"  MASSGEN_TRACING is {'on' if settings['enabled'] else 'off'} in this environment")
    print()
    print("Frameworks:")
    for dist in ("langgraph", "langchain-core", "smolagents", "openinference-instrumentation-langchain",
                 "openinference-instrumentation-smolagents", "opentelemetry-sdk", "massgen"):
        try:
            print(f"  {dist:<42} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            print(f"  {dist:<42} not installed")
    print()
    print("Exporters:")
    plan = exporter_plan(settings)
    if settings["sdk_disabled"]:
        print("  none: OTEL_SDK_DISABLED is true, nothing is traced")
    elif not plan:
        print("  none (no OTEL_TRACES_EXPORTER and no endpoint variable): live view and JSONL file only")
    failures = 0
    for name, endpoint in plan:
        if endpoint is None:
            print(f"  {name}: spans printed to stdout")
            continue
        status = _probe_tcp(endpoint, args.timeout) if "grpc" in name else _probe_http(endpoint, args.timeout)
        failures += "NOT" in status
        print(f"  {name} -> {endpoint}: {status}")
    return 1 if failures or problems else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="massgen-trace", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run a LangGraph workflow and a smolagents agent offline, traced live")
    d.add_argument("--framework", choices=("both", "langgraph", "smolagents"), default="both")
    d.add_argument("--pace", type=_number("seconds", positive=False), default=0.15,
                   help="seconds each scripted model call takes (default 0.15)")
    d.add_argument("--fast", action="store_true", help="no artificial pacing")
    d.add_argument("--file", default=None,
                   help="JSONL record to write (default: MASSGEN_TRACING_FILE or ./massgen-trace-demo.jsonl)")
    d.add_argument("--console", default=None, choices=("auto", "live", "plain", "off"),
                   help="default: MASSGEN_TRACING_CONSOLE, else auto")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("replay", help="re-render a recorded JSONL file in the terminal")
    r.add_argument("file")
    r.add_argument("--speed", type=_number("times the recorded pace", positive=True), default=1.0,
                   help="1 = recorded pace, 2 = twice as fast")
    r.add_argument("--instant", action="store_true", help="no waiting between records")
    r.add_argument("--summary", action="store_true", help="print one line per run instead")
    r.add_argument("--console", default="auto", choices=("auto", "live", "plain", "off"))
    r.set_defaults(func=_cmd_replay)

    doc = sub.add_parser("doctor", help="show the effective configuration and check endpoints")
    doc.add_argument("--timeout", type=_number("seconds", positive=True), default=2.0,
                     help="seconds to wait for each endpoint")
    doc.set_defaults(func=_cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.monotonic()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - start:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
