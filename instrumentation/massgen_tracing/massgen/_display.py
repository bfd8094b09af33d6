"""`DisplaySink`: step records straight into a MassGen display, for programs that embed one.

Needs no MassGen import: it only calls the display's `update_agent_content`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from massgen_tracing._internal.records import StepRecord
from massgen_tracing.massgen._render import Line, StepRenderer


class DisplaySink:
    """A sink that shows every step in the panel of the agent it runs for.

    `display` is any MassGen `BaseDisplay` (simple, rich_terminal, textual_terminal, web, …). Each
    record becomes one compact line sent with `update_agent_content(agent_id, line, content_type)`:
    `status` for step starts, ends, progress and errors, `tool` for tool steps and tool-call decisions,
    `thinking` for streamed model text (coalesced: at most one line per model call every
    `delta_interval` seconds, default 0.5). The agent is the step's `massgen.agent.id` (set by this
    package's MassGen tools), else `agent_id`; steps with neither are not shown.

    Like every sink it runs on its own background thread; MassGen's displays accept calls from any
    thread (the textual one forwards them to its app thread).
    """

    def __init__(self, display: Any, *, agent_id: str | None = None, delta_interval: float | None = None):
        self._display = display
        self._renderer = StepRenderer(delta_interval=delta_interval, default_agent=agent_id)
        self._lock = threading.Lock()  # handle() and close() may come from different threads

    def handle(self, record: StepRecord) -> None:
        with self._lock:
            now = time.monotonic()
            lines = self._renderer.due(now) + self._renderer.feed(record, now)
        self._show(lines)

    def close(self) -> None:
        with self._lock:
            lines = self._renderer.flush()
        self._show(lines)

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's sink thread may have held it at the fork

    def _show(self, lines: list[Line]) -> None:
        for line in lines:
            if line.agent_id:
                self._display.update_agent_content(line.agent_id, line.text, line.content_type)
