"""Replay a recorded JSONL file into any sink at its recorded pace, and summarize a recording per run.

Backs `massgen-trace replay` (and `--summary`); a torn last line is skipped by `read_jsonl`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from typing import IO

from massgen_tracing._internal import convention as c
from massgen_tracing._internal.console import StepNode, StepTree, format_duration, format_tokens
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.sinks import Sink, read_jsonl

MAX_GAP_NS = 2_000_000_000  # longer quiet spells in a recording are replayed as 2 s (at speed 1)


def load(path_or_stream: str | os.PathLike[str] | IO[str]) -> list[StepRecord]:
    """The records of a JSONL recording, from a path or an open text stream."""
    if isinstance(path_or_stream, (str, os.PathLike)):
        # errors="replace": a line torn inside a multi-byte character must fail as JSON, not as UTF-8.
        with open(path_or_stream, encoding="utf-8", errors="replace") as f:
            return read_jsonl(f)
    return read_jsonl(path_or_stream)


def replay(
    path_or_stream: str | os.PathLike[str] | IO[str],
    sink: Sink,
    *,
    speed: float | None = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Feed the recorded records to `sink` in order, `speed` times the recorded pace (None: at once).

    Returns the number of records fed. The sink is not closed: the caller owns it.
    """
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"replay speed must be a positive finite number or None, not {speed!r}")
    records = load(path_or_stream)
    latest: int | None = None
    for record in records:
        if speed is not None and latest is not None and record.time_ns > latest:
            # A file appended by several program runs holds their idle time between them too.
            sleep(min(record.time_ns - latest, MAX_GAP_NS) / 1e9 / speed)
        # Records of interleaved runs need not be in time order; wait only when time moves forward.
        if latest is None or record.time_ns > latest:
            latest = record.time_ns
        sink.handle(record)
    return len(records)


def summarize(records: Iterable[StepRecord]) -> str:
    """One line per top-level run: name, framework, status, duration, steps by kind, tokens."""
    items = list(records)
    tree = StepTree(max_finished_runs=len(items) + 1)
    last_ns: int | None = None
    seen: dict[int, int] = {}  # id(root) → order of first appearance, to break start-time ties
    for record in items:
        node = tree.feed(record)
        if node is not None:
            seen.setdefault(id(node.root), len(seen))
        last_ns = record.time_ns if last_ns is None else max(last_ns, record.time_ns)
    roots = sorted(tree.finished_runs() + tree.running_runs(), key=lambda n: (n.start_ns, seen.get(id(n), 0)))
    if not roots:
        return "no runs recorded"
    return "\n".join(_summary_line(root, last_ns or root.start_ns) for root in roots)


def _summary_line(root: StepNode, last_ns: int) -> str:
    name = f"{root.name} [{root.framework}]" if root.framework else root.name
    if root.kind != "run":
        name = f"{root.kind} {name}"
    if root.status == "running":
        head = f"{name} unfinished after {format_duration(root.elapsed_ns(last_ns))}"
    else:
        head = f"{name} {root.status} in {format_duration(root.elapsed_ns(last_ns))}"
    total = sum(root.step_counts.values())
    known = [k for k in c.STEP_KINDS if root.step_counts[k]]
    kinds = known + sorted(k for k in root.step_counts if k not in c.STEP_KINDS and root.step_counts[k])
    steps = f"{total} step" + ("" if total == 1 else "s")
    if kinds:
        steps += " (" + ", ".join(f"{k} {root.step_counts[k]}" for k in kinds) + ")"
    parts = [f"{head}: {steps}"]
    tokens = format_tokens(root)
    if tokens:
        parts.append(f"tokens {tokens}")
    if root.status == "error" and root.error:
        parts.append(f"error {root.error}")
    return ", ".join(parts)
