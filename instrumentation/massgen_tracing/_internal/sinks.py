"""The sink protocol and the simple sinks (callback, JSONL). Console sinks live in `console.py`.

A sink's `handle` runs on its own background thread, never on the traced program's thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import IO, Protocol, runtime_checkable

from massgen_tracing._internal.guard import internal, tell
from massgen_tracing._internal.records import StepRecord


@runtime_checkable
class Sink(Protocol):
    """Receives step records in order, one call at a time, on a background thread.

    A sink may also define `handle_batch(records)`: then it gets every record waiting at once, in
    order, which lets it write a burst with one system call (see `PlainConsoleSink`, `JsonlSink`);
    and `after_fork_in_child()`: called in a forked child before its sink thread restarts there, to
    renew locks the parent's sink thread may have held at the fork (it would never release them).
    """

    def handle(self, record: StepRecord) -> None: ...

    def close(self) -> None: ...


class CallbackSink:
    """Calls `fn(record)` for every record: the hook for programs."""

    def __init__(self, fn: Callable[[StepRecord], object], *, on_close: Callable[[], object] | None = None):
        self._fn = fn
        self._on_close = on_close

    def handle(self, record: StepRecord) -> None:
        self._fn(record)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


class JsonlSink:
    """Appends one JSON line per record, each written and flushed whole, so a crash loses at most the
    record being written; a torn last line is skipped by readers (`read_jsonl`)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def handle(self, record: StepRecord) -> None:
        self._write((record.to_json() + "\n").encode("utf-8"))

    def handle_batch(self, records: Sequence[StepRecord]) -> None:
        """Whole lines for all of `records` in one `write`: fewer system calls, and each one lets the
        program's thread take the GIL back. A record that cannot be serialised is reported, not written."""
        lines: list[str] = []
        for record in records:
            with internal("sink.jsonl"):
                lines.append(record.to_json() + "\n")
        if lines:
            self._write("".join(lines).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._fd < 0:
                return
            view = memoryview(data)
            try:
                while view:  # os.write may write less than asked on pipes or full disks
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as exc:  # a full disk, an I/O error: the user's problem to fix, not our bug
                tell(f"massgen-tracing: writing the JSONL record {self.path!r} failed "
                     f"({exc.strerror or exc}); no more records are written to it.")
                os.close(self._fd)
                self._fd = -1

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's sink thread may have been inside `_write`


def read_jsonl(stream: IO[str]) -> list[StepRecord]:
    """Read a JSONL record; a torn or unreadable line is skipped, the rest kept."""
    import json

    out: list[StepRecord] = []
    for line in stream:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):  # a line of valid JSON that is no record (`[1, 2]`, `null`): skipped
                out.append(StepRecord.from_dict(obj))
        except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: a time of 1e400
            continue
    return out
